#pragma once

// The part of the core's coredecls.h a sketch uses on the twin: the callback for a clock
// set by SNTP (argument true) or by settimeofday() (false). sim_time.cpp.
#include <functional>

using BoolCB = std::function<void(bool)>;
using TrivialCB = std::function<void()>;

void settimeofday_cb(BoolCB&& cb);
void settimeofday_cb(const BoolCB& cb);
void settimeofday_cb(const TrivialCB& cb);
