"""esp-hil: hardware-in-the-loop testing for ESP8266 WiFi firmware."""
