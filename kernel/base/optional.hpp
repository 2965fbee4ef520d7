// A value or nothing, for results that must not be confused with a valid
// value of the same type (e.g. a page allocator out of pages: Hpa(0) is a
// real address). Freestanding: no exceptions; value() on an empty Optional
// is a bug the caller rules out by checking first.
#pragma once

namespace microhv {

template <typename T>
class Optional {
 public:
  constexpr Optional() = default;
  constexpr Optional(T value) : value_(value), has_(true) {}  // NOLINT: implicit on purpose

  constexpr bool has_value() const { return has_; }
  constexpr explicit operator bool() const { return has_; }
  constexpr const T& value() const { return value_; }
  constexpr T value_or(T fallback) const { return has_ ? value_ : fallback; }
  friend constexpr bool operator==(const Optional& a, const Optional& b) {
    return a.has_ == b.has_ && (!a.has_ || a.value_ == b.value_);
  }

 private:
  T value_{};
  bool has_ = false;
};

// The empty one, for return statements: `return kNone;`.
struct NoneTag {
  template <typename T>
  constexpr operator Optional<T>() const {
    return Optional<T>();
  }
};
inline constexpr NoneTag kNone{};

}  // namespace microhv
