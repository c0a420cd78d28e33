"""What tests share: fixtures loaded as plugins by the root conftest (database
servers, moto's S3, the metadata stand-in, users, the kill -9 harness) and helpers
that test modules import. A test module imports from here, never from another test
module or a conftest (tests/test_layout_of_tests.py checks it)."""
