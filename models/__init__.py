"""Models: the live customer-category classifier and its River-API estimator."""
