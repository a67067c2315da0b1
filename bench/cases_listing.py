CASE_IDS: list[str] = []
