"""hooking"""
