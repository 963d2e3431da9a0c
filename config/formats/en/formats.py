# "Wed 11 Jun 2025, 15:00": unambiguous for English readers on both sides of the Atlantic.
SHORT_DATETIME_FORMAT = "D j M Y, H:i"
