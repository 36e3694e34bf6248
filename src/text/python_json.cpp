// JSON as Python's json module reads (json.loads) and writes (json.dumps, ensure_ascii=False).
#include "text/python_json.h"

#include <charconv>
#include <cmath>
#include <cstdlib>
#include <vector>

#include "util/error.h"

namespace fourbit {

namespace {

using ordered_json = nlohmann::ordered_json;

// Builds the document from nlohmann's SAX events, keeping integers beyond 64 bits exactly as
// Python does (nlohmann's own builder would round them to a double).
class PythonJsonBuilder {
public:
    explicit PythonJsonBuilder(ordered_json& root) : root_(root) {}

    bool null() { return add(nullptr); }
    bool boolean(bool value) { return add(value); }
    bool number_integer(ordered_json::number_integer_t value) { return add(value); }
    bool number_unsigned(ordered_json::number_unsigned_t value) { return add(value); }
    bool number_float(ordered_json::number_float_t value, const std::string& literal) {
        if (literal.find_first_of(".eE") == std::string::npos) {
            // An integer literal too large for 64 bits: keep its digits (JSON allows no leading
            // zeros or '+', so the literal is already what Python's repr(int) prints).
            return add(ordered_json::binary(std::vector<uint8_t>(literal.begin(), literal.end()),
                                            kBigIntegerSubtype));
        }
        return add(value);
    }
    bool string(std::string& value) { return add(std::move(value)); }
    bool binary(ordered_json::binary_t&) { return true; }  // not produced by JSON text
    bool start_object(std::size_t) { return open(ordered_json::object()); }
    bool key(std::string& key) {
        key_ = std::move(key);
        return true;
    }
    bool end_object() { return close(); }
    bool start_array(std::size_t) { return open(ordered_json::array()); }
    bool end_array() { return close(); }
    bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception& error) {
        // "[json.exception.parse_error.101] parse error at line 1, column 5: ..." -> the part
        // after the bracketed id.
        std::string message = error.what();
        if (size_t end = message.find("] "); message.starts_with("[") && end != std::string::npos) {
            message.erase(0, end + 2);
        }
        error_ = message;
        return false;
    }

    const std::string& error() const { return error_; }

private:
    // Places `value` in the current container (or as the root) and returns where it went.
    ordered_json* place(ordered_json value) {
        if (stack_.empty()) {
            root_ = std::move(value);
            return &root_;
        }
        ordered_json& parent = *stack_.back();
        if (parent.is_array()) {
            parent.push_back(std::move(value));
            return &parent.back();
        }
        // NOTE: ordered_map's operator[] returns the existing entry for a repeated key, so the key
        // keeps its first position and takes the new value, as a Python dict does.
        ordered_json& slot = parent[key_];
        slot = std::move(value);
        return &slot;
    }
    bool add(ordered_json value) {
        place(std::move(value));
        return true;
    }
    // Pointers on the stack stay valid: a container only grows while it is the innermost open
    // one, and its earlier children are closed by then.
    bool open(ordered_json container) {
        stack_.push_back(place(std::move(container)));
        return true;
    }
    bool close() {
        stack_.pop_back();
        return true;
    }

    ordered_json& root_;
    std::vector<ordered_json*> stack_;
    std::string key_;
    std::string error_;
};

// Python's json encoder escapes '"', '\\' and the C0 controls; everything else, non-ASCII,
// DEL and '/' included, is written as is (ensure_ascii=False).
void append_python_string(std::string& out, std::string_view text) {
    static constexpr char kHex[] = "0123456789abcdef";
    out.push_back('"');
    for (char c : text) {
        switch (c) {
            case '"':
                out += "\\\"";
                break;
            case '\\':
                out += "\\\\";
                break;
            case '\n':
                out += "\\n";
                break;
            case '\r':
                out += "\\r";
                break;
            case '\t':
                out += "\\t";
                break;
            case '\b':
                out += "\\b";
                break;
            case '\f':
                out += "\\f";
                break;
            default:
                if (static_cast<unsigned char>(c) < 0x20) {
                    out += "\\u00";
                    out.push_back(kHex[(c >> 4) & 0xf]);
                    out.push_back(kHex[c & 0xf]);
                } else {
                    out.push_back(c);
                }
        }
    }
    out.push_back('"');
}

}  // namespace

std::optional<ordered_json> try_parse_json_like_python(std::string_view text) {
    ordered_json root;
    PythonJsonBuilder builder(root);
    if (!ordered_json::sax_parse(text.begin(), text.end(), &builder)) return std::nullopt;
    return root;
}

ordered_json parse_json_like_python(std::string_view text, std::string_view what) {
    ordered_json root;
    PythonJsonBuilder builder(root);
    if (!ordered_json::sax_parse(text.begin(), text.end(), &builder)) {
        fail("{}: {}", what, builder.error());
    }
    return root;
}

std::string python_float_repr(double value) {
    if (std::isnan(value)) return "NaN";
    if (std::isinf(value)) return value > 0 ? "Infinity" : "-Infinity";
    if (value == 0) return std::signbit(value) ? "-0.0" : "0.0";

    // Shortest round-trip digits (as Python's repr picks them), read off the scientific form
    // "-d.ddde-XX".
    char buffer[64];
    const auto [end, error] =
        std::to_chars(buffer, buffer + sizeof(buffer), value, std::chars_format::scientific);
    FOURBIT_ASSERT(error == std::errc{}, "to_chars failed for {}", value);
    std::string_view text(buffer, end - buffer);
    std::string out;
    if (text.front() == '-') {
        out.push_back('-');
        text.remove_prefix(1);
    }
    const size_t e = text.find('e');
    std::string digits;
    for (char c : text.substr(0, e)) {
        if (c != '.') digits.push_back(c);
    }
    int exponent = 0;
    std::from_chars(text.data() + e + 1 + (text[e + 1] == '+'), text.data() + text.size(),
                    exponent);
    // Python's rule (float_repr_style 'short'): with the value as 0.DIGITS x 10^decpt, use
    // exponent notation when decpt <= -4 or decpt > 16.
    const int decpt = exponent + 1;
    const int n_digits = static_cast<int>(digits.size());
    if (decpt <= -4 || decpt > 16) {
        out.push_back(digits[0]);
        if (n_digits > 1) {
            out.push_back('.');
            out.append(digits, 1);
        }
        out += fmt::format("e{}{:02d}", exponent < 0 ? '-' : '+', std::abs(exponent));
    } else if (decpt <= 0) {
        out += "0.";
        out.append(-decpt, '0');
        out += digits;
    } else if (decpt >= n_digits) {
        out += digits;
        out.append(decpt - n_digits, '0');
        out += ".0";
    } else {
        out.append(digits, 0, decpt);
        out.push_back('.');
        out.append(digits, decpt);
    }
    return out;
}

void append_python_json(std::string& out, const ordered_json& value) {
    switch (value.type()) {
        case ordered_json::value_t::null:
            out += "null";
            break;
        case ordered_json::value_t::boolean:
            out += value.get<bool>() ? "true" : "false";
            break;
        case ordered_json::value_t::number_integer:
            out += std::to_string(value.get<int64_t>());
            break;
        case ordered_json::value_t::number_unsigned:
            out += std::to_string(value.get<uint64_t>());
            break;
        case ordered_json::value_t::number_float:
            out += python_float_repr(value.get<double>());
            break;
        case ordered_json::value_t::string:
            append_python_string(out, value.get_ref<const std::string&>());
            break;
        case ordered_json::value_t::array: {
            out.push_back('[');
            bool first = true;
            for (const ordered_json& item : value) {
                if (!first) out += ", ";
                first = false;
                append_python_json(out, item);
            }
            out.push_back(']');
            break;
        }
        case ordered_json::value_t::object: {
            out.push_back('{');
            bool first = true;
            for (const auto& [key, item] : value.items()) {
                if (!first) out += ", ";
                first = false;
                append_python_string(out, key);
                out += ": ";
                append_python_json(out, item);
            }
            out.push_back('}');
            break;
        }
        case ordered_json::value_t::binary: {
            const ordered_json::binary_t& bytes = value.get_binary();
            FOURBIT_ASSERT(bytes.has_subtype() && bytes.subtype() == kBigIntegerSubtype,
                           "binary JSON value that is not a big integer");
            out.append(bytes.begin(), bytes.end());
            break;
        }
        case ordered_json::value_t::discarded:
            FOURBIT_ASSERT(false, "discarded JSON value");
    }
}

std::string python_json_dumps(const ordered_json& value) {
    std::string out;
    append_python_json(out, value);
    return out;
}

}  // namespace fourbit
