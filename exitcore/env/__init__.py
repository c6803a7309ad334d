"""The batched exit environment: state, step, observations (design.md §2-§4)."""
