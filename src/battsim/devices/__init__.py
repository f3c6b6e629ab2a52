"""The battery monitor on the wire: the live world's registers served over Modbus TCP (and SNMP)."""
