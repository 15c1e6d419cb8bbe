#pragma once
// A TLM extension that stays on its payload: attached the first time a payload passes, reused
// on every later pass and freed with the payload. The DMA engines pool and reuse their
// payloads, so a block that marks each request (its sender, its state) allocates once per
// payload, not once per request, and finds the mark again without a lookup.
#include <tlm>

namespace tpu {

// Derive as `struct Mark : StickyExtension<Mark> { ...fields... };` (fields copyable).
template <typename T>
struct StickyExtension : tlm::tlm_extension<T> {
  tlm::tlm_extension_base* clone() const override {
    return new T(static_cast<const T&>(*this));
  }
  void copy_from(const tlm::tlm_extension_base& other) override {
    static_cast<T&>(*this) = static_cast<const T&>(other);
  }
};

// The payload's T, created on its first pass.
template <typename T>
T& sticky_extension(tlm::tlm_generic_payload& trans) {
  T* extension = trans.get_extension<T>();
  if (!extension) {
    extension = new T;
    trans.set_extension(extension);
  }
  return *extension;
}

}  // namespace tpu
