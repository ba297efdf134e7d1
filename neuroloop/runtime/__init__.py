"""neuroloop.runtime"""
