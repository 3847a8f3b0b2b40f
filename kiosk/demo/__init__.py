"""`kiosk demo`: a seeded kiosk beside the reference platform, for a first look."""
