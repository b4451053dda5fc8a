"""Feature logic: per-entity state that folds events into feature values, shared by the
live flow, the backfill and the training sets."""
