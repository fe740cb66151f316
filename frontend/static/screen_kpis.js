// Big screen, console: The KPI panel: GET /api/kpis drawn with ECharts.
// (to be written)
