/* Which feed the page shows: the live run or a replay. Changing it starts the store and alarms afresh. */
import { clearAlarms } from "./alarms.js";
import { feeds, updateFeedPill } from "./feeds.js";
import { $, state } from "./page.js";
import { store } from "./store.js";

const leavingReplay = []; // what to forget when the page goes back to live

export function onLeavingReplay(forget) { leavingReplay.push(forget); }

export function setView(view) {
  if (state.view === view) return;
  state.view = view;
  for (const feed of Object.values(feeds)) { feed.queue = []; feed.queuedBytes = 0; }
  if (view === "live") {
    feeds.replay.close(); // the replay may go on on the server; this page stops watching it
    for (const forget of leavingReplay) forget();
  }
  store.reset();
  clearAlarms();
  $("view-name").textContent = view;
  updateFeedPill();
}
