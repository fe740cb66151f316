"""The pages (HTML, JS, CSS, vendored MapLibre and ECharts) served by command/pages.py."""
