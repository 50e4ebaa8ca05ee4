"""Reading the user's data: pairs and knowledge-base records with row-level checks, the
knowledge base joined to the pairs, token counts beyond the model's limit, and where the
base model comes from."""
