"""`python -m bookstore generate`: publish customers, books and orders now (burst)."""
