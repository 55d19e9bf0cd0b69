// Run by the mongo image once, on an empty volume, as its root user: a user per principal that
// holds MongoDB credentials (the file `python -m bookstore.provision compose` wrote, mounted as a
// secret: MongoDB takes the passwords themselves, not a verifier).
load("/run/secrets/users.js");
