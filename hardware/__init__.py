"""Device adapters behind small interfaces: card readers, camera, speaker.

Nothing in this package imports the rest of the project, so each adapter can be tested alone.
"""
