"""Operations: storage (open, backup, restore, nightly), doctor, provisioning, roster import."""
