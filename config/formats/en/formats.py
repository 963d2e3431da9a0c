# "Wed 11 Jun 2025, 15:00": unambiguous for English readers on both sides of the Atlantic.
SHORT_DATETIME_FORMAT = "D j M Y, H:i"
# Dates without a time (chart axes, lists): "11 Jun 2025", like the above.
SHORT_DATE_FORMAT = "j M Y"
