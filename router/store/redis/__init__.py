"""store/redis"""
