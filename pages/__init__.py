"""The top layer: pages that show several apps at once (the dashboard, the lead
profile, settings) and the demo account. They may import every app; nothing
imports them."""
