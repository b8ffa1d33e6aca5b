"""(being written)"""
default_handlers = []
