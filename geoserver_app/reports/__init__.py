"""Map reports: a standalone HTML page per territory (folium map, indicators, deficits, facilities, balance)."""

from geoserver_app.reports.build import build_report

__all__ = ["build_report"]
