"""autoscaler/config"""
