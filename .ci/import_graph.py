"""The import graph between Leadflow's apps: for each pair that has any, how many
import lines (`make imports`). The contracts in pyproject.toml decide which
pairs may exist; this shows what is there."""

import grimp

APPS = ["core", "leads", "scoring", "segments", "flows", "pages", "config"]
graph = grimp.build_graph(*APPS)
for source in APPS:
    for target in APPS:
        if source == target:
            continue
        lines = 0
        for module in graph.find_descendants(source) | {source}:
            for imported in graph.find_modules_directly_imported_by(module):
                if imported == target or imported.startswith(target + "."):
                    details = graph.get_import_details(importer=module, imported=imported)
                    lines += len(details) or 1
        if lines:
            print(f"{source:>9} -> {target:<9} {lines:4d} import lines")
