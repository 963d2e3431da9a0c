"""Our own date formats per language, over Django's (see FORMAT_MODULE_PATH)."""
