"""Where generated entities come from: Google Books (when reachable) and Faker (always)."""
