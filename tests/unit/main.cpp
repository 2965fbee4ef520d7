#define CATCH_CONFIG_MAIN
// Catch2's runner uses std::regex, where GCC 12 with -O1 and the sanitizers
// warns of a moved-from std::function "maybe uninitialized" inside libstdc++
// (a false positive in a system header, not in microhv's code).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <catch2/catch.hpp>
