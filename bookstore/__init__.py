"""Livros & Dados domain: message schemas, one module per store, one per data source."""
