"""The served model: a trained ranker with its serving catalogue (ids, context codes, histories), the scorer that
handles new items and unknown users, and the MLflow Model of pyfunc flavour that packages them without pickle.
The registry logs it (em3.registry); batch scoring of impression logs (``em3 score``) is em3.serving."""
