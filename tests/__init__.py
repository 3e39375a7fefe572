"""minirnn's tests: a package so that they share tests/helpers/ (`from tests.helpers import ...`)."""
