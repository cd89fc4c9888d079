#include "paradiff/server/web_page.h"

namespace paradiff::server {

// Defined in the generated web_page_text.cc.
extern const char* const kWebPageText;

std::string_view web_page() {
  return kWebPageText;
}

}  // namespace paradiff::server
