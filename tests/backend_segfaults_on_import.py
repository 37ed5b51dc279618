"""A backend module that crashes (SIGSEGV) while it is imported."""
import ctypes

ctypes.string_at(0)
