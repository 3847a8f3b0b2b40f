"""The county console (县级管理台): server-rendered Chinese pages over the reference platform for
the county administrator and the township operators (docs/console.md)."""
