def make_handlers(prefix):
    return []
