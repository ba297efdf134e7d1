"""neuroloop.stimulation"""
