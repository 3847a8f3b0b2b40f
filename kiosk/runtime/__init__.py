"""The running daemon: composition root, reader threads, sync jobs, sd_notify, clock, logging."""
