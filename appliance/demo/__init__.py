"""`appliance demo`: the reference story, unattended and offline (story.py tells it)."""

from appliance.demo.options import SUMMARY_METRICS, DemoOptions
from appliance.demo.story import run_demo, summary_rows

__all__ = ["SUMMARY_METRICS", "DemoOptions", "run_demo", "summary_rows"]
