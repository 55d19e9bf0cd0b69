"""Generation tasks (queue `generate`)."""
