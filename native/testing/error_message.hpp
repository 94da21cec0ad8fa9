// The message of the exception a call throws, for the gtest suites' error-text checks.
#pragma once

#include <functional>
#include <string>

namespace jitvision::testutil {

// What `call` throws as an E (its what()), or "(no exception)" when it returns normally. Other exceptions propagate,
// so gtest reports them.
template <typename E>
std::string message_of(const std::function<void()>& call) {
  try {
    call();
  } catch (const E& e) {
    return e.what();
  }
  return "(no exception)";
}

}  // namespace jitvision::testutil
