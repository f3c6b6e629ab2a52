"""A fleet as shards: sites are independent, so a run splits into parts of whole sites.

The shard plan (:mod:`battsim.scale.plan`) depends only on the fleet and the most jars a part may hold,
never on how many workers run it, so the same seed gives the same parts, and the same readings, for any
number of worker processes (:mod:`battsim.scale.runner`) or Ray tasks (:mod:`battsim.scale.ray_runner`).
Each part is an ordinary recording (``part-000.duckdb`` …) beside a manifest (:mod:`battsim.scale.manifest`);
:mod:`battsim.scale.shardset` opens the directory as one recording for every reader.
"""
