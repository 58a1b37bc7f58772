"""pyserial URL handlers of esp-hil (registered through ``serial.protocol_handler_packages``)."""
