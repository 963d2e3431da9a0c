# The ScoreChange ledger, categories and grades live here (see DESIGN.md).
