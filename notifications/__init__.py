"""The Notification service: emails about orders, and the record of each one."""
