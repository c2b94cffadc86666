"""The bottom layer: what every app shares (entity types and their URL slugs, paging, counts
for display, domain errors). It imports nothing from the apps, so any of them may import it."""
