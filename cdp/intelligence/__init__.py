"""intelligence"""
