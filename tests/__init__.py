import pytest

# Helpers in tests/support assert too: rewrite them as pytest rewrites test modules, so a
# failing helper shows its values (registered before anything imports them).
pytest.register_assert_rewrite("tests.support")
