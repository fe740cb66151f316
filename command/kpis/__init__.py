"""The KPIs room: one server-side source of the command centre's figures (counts, response
times against the targets, 处置及时率, unit availability, shelter occupancy, low stock),
used by the console's KPI panel and, later, the drill reports."""
