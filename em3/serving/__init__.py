"""Serving: the MLflow Model of a trained ranker (pyfunc, no pickle), scoring with cold items and unknown users,
and batch scoring of impression logs (``em3 score``)."""
