"""One module or package per verb. A verb may import stats and runtime; verbs import each other
only through public names (never a leading underscore)."""
