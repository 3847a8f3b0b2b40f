"""The caregiver's touchscreen domains: PIN sessions, missing diners, 公示, ledgers, status bar."""
