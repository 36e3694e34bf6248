#!/usr/bin/env python3
"""Seeded chat and tool-call conversations in MiniMax-M2's chat format, for the demo model.

Each conversation is an OpenAI-style request (system prompt, tools, user turns) with the
assistant turns a rule decides: a request that a listed tool serves gets `<think>` reasoning and
a `<minimax:tool_call>` whose arguments are copied from the request, then the tool's result and
a final answer that uses it; a request that no listed tool serves (general questions, arithmetic,
what a command does, weather *knowledge*, the time or weather when no such tool is listed) gets
reasoning that says so and a direct answer. Conversations are rendered with the official
MiniMax-M2 chat template (models/templates/minimax_m2_chat_template.jinja, the same text as
../shared/testdata's copy) by jinja2 configured as transformers configures it.

The request phrasings here are the TRAINING phrasings. tests/server/test_demo_model.py asks with
phrasings of its own and checks that none of them is one of these (held-out prompts, same
distribution: the same tools, cities and kinds of request).

Writes --out (one rendered conversation per line, JSON strings) and prints counts per kind.
"""
import argparse
import json
import os
import random
import re
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "reference"))
from make_chat_reference import make_environment, preprocess  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(HERE))
TEMPLATE_PATH = os.path.join(ROOT, "models", "templates", "minimax_m2_chat_template.jinja")

CITIES = [
    "Paris", "London", "Berlin", "Madrid", "Rome", "Lisbon", "Dublin", "Amsterdam", "Brussels",
    "Vienna", "Prague", "Warsaw", "Budapest", "Athens", "Oslo", "Stockholm", "Helsinki",
    "Copenhagen", "Zurich", "Geneva", "Munich", "Hamburg", "Milan", "Naples", "Barcelona",
    "Seville", "Porto", "Lyon", "Marseille", "Edinburgh", "Manchester", "Krakow", "Bucharest",
    "Sofia", "Belgrade", "Zagreb", "Istanbul", "Ankara", "Moscow", "Kyiv", "Riga", "Tallinn",
    "Vilnius", "Reykjavik", "Cairo", "Lagos", "Nairobi", "Accra", "Casablanca", "Tunis",
    "Johannesburg", "Cape Town", "Addis Ababa", "Dakar", "Kampala", "Dubai", "Doha", "Riyadh",
    "Tehran", "Baghdad", "Karachi", "Lahore", "Delhi", "Mumbai", "Bangalore", "Chennai",
    "Kolkata", "Dhaka", "Kathmandu", "Colombo", "Bangkok", "Hanoi", "Singapore",
    "Kuala Lumpur", "Jakarta", "Manila", "Hong Kong", "Shanghai", "Beijing", "Shenzhen",
    "Taipei", "Seoul", "Busan", "Tokyo", "Osaka", "Kyoto", "Sydney", "Melbourne", "Brisbane",
    "Perth", "Auckland", "Wellington", "Honolulu", "Anchorage", "Vancouver", "Seattle",
    "Portland", "San Francisco", "Los Angeles", "San Diego", "Las Vegas", "Phoenix", "Denver",
    "Dallas", "Houston", "Austin", "Chicago", "Detroit", "Minneapolis", "Toronto", "Montreal",
    "Ottawa", "Boston", "New York", "Philadelphia", "Washington", "Atlanta", "Miami",
    "New Orleans", "Mexico City", "Havana", "Bogota", "Lima", "Quito", "Santiago",
    "Buenos Aires", "Montevideo", "Sao Paulo", "Rio de Janeiro", "Caracas", "Panama City",
    "Nashville", "Pittsburgh", "Cleveland", "Glasgow", "Bristol", "Leeds", "Valencia",
    "Bologna", "Florence", "Venice", "Turin", "Antwerp", "Rotterdam", "Utrecht", "Gothenburg",
    "Bergen", "Salzburg", "Innsbruck", "Graz", "Ljubljana", "Bratislava", "Sarajevo", "Skopje",
    "Tbilisi", "Yerevan", "Baku", "Almaty", "Tashkent", "Ulaanbaatar", "Hobart", "Adelaide",
    "Darwin", "Christchurch", "Fiji", "Calgary", "Edmonton", "Winnipeg", "Quebec City",
    "Halifax", "Sacramento", "Salt Lake City", "Kansas City", "St. Louis", "Memphis",
    "Charlotte", "Orlando", "Tampa", "Baltimore", "Cincinnati", "Indianapolis", "Milwaukee",
]

COUNTRIES = {
    "France": "Paris", "Germany": "Berlin", "Spain": "Madrid", "Italy": "Rome",
    "Portugal": "Lisbon", "Ireland": "Dublin", "the Netherlands": "Amsterdam",
    "Belgium": "Brussels", "Austria": "Vienna", "Czechia": "Prague", "Poland": "Warsaw",
    "Hungary": "Budapest", "Greece": "Athens", "Norway": "Oslo", "Sweden": "Stockholm",
    "Finland": "Helsinki", "Denmark": "Copenhagen", "Iceland": "Reykjavik", "Egypt": "Cairo",
    "Kenya": "Nairobi", "Ghana": "Accra", "Japan": "Tokyo", "South Korea": "Seoul",
    "China": "Beijing", "Thailand": "Bangkok", "Vietnam": "Hanoi", "India": "New Delhi",
    "Canada": "Ottawa", "the United States": "Washington, D.C.", "Mexico": "Mexico City",
    "Peru": "Lima", "Chile": "Santiago", "Argentina": "Buenos Aires", "Uruguay": "Montevideo",
    "Colombia": "Bogota", "Cuba": "Havana", "Australia": "Canberra", "New Zealand": "Wellington",
    "Turkey": "Ankara", "Georgia": "Tbilisi", "Armenia": "Yerevan", "Nepal": "Kathmandu",
    "the United Kingdom": "London", "Switzerland": "Bern", "Romania": "Bucharest",
    "Bulgaria": "Sofia", "Serbia": "Belgrade", "Croatia": "Zagreb", "Estonia": "Tallinn",
    "Latvia": "Riga", "Lithuania": "Vilnius", "Morocco": "Rabat", "Nigeria": "Abuja",
    "Brazil": "Brasilia", "Indonesia": "Jakarta", "Philippines": "Manila",
}

CONDITIONS = ["sunny", "cloudy", "partly cloudy", "overcast", "light rain", "heavy rain",
              "drizzle", "snow", "foggy", "windy", "clear", "thunderstorms", "hazy", "sleet"]

WEATHER_TOOL_DESCRIPTIONS = ["Get the current weather for a city.",
                             "Get the current weather in a given city.",
                             "Look up current weather conditions for a city.",
                             "Returns the current temperature and conditions for a city."]


def weather_tool(rng):
    properties = {"city": {"type": "string", "description": rng.choice(
        ["The city name, e.g. Paris", "Name of the city", "City to get the weather for",
         "The city, e.g. San Francisco"])}}
    if rng.random() < 0.4:
        properties["unit"] = {"type": "string", "enum": ["celsius", "fahrenheit"]}
    return {"type": "function", "function": {
        "name": "get_weather", "description": rng.choice(WEATHER_TOOL_DESCRIPTIONS),
        "parameters": {"type": "object", "properties": properties, "required": ["city"]}}}


def simple_tool(name, description, params, required=None):
    return {"type": "function", "function": {
        "name": name, "description": description,
        "parameters": {"type": "object",
                       "properties": {k: {"type": t, "description": d} for k, (t, d) in params.items()},
                       "required": required or list(params)}}}


OTHER_TOOLS = {
    "get_time": lambda rng: simple_tool("get_time", "Get the current local time in a city.",
                                        {"city": ("string", "The city name")}),
    "search_web": lambda rng: simple_tool("search_web", "Search the web and return the top results.",
                                          {"query": ("string", "The search query")}),
    "calculate": lambda rng: simple_tool("calculate", "Evaluate an arithmetic expression.",
                                         {"expression": ("string", "The expression, e.g. 2 * (3 + 4)")}),
    "send_email": lambda rng: simple_tool("send_email", "Send an email.",
                                          {"to": ("string", "Recipient address"),
                                           "subject": ("string", "Subject line"),
                                           "body": ("string", "Message text")}),
    "get_stock_price": lambda rng: simple_tool("get_stock_price", "Get the latest price of a stock.",
                                               {"symbol": ("string", "Ticker symbol, e.g. AAPL")}),
    "translate_text": lambda rng: simple_tool("translate_text", "Translate text into another language.",
                                              {"text": ("string", "The text to translate"),
                                               "target_language": ("string", "Language to translate into")}),
    "read_file": lambda rng: simple_tool("read_file", "Read a file from the local disk.",
                                         {"path": ("string", "Path of the file")}),
    "set_reminder": lambda rng: simple_tool("set_reminder", "Set a reminder.",
                                            {"time": ("string", "When, e.g. 5pm"),
                                             "message": ("string", "What to remind about")}),
}

WEATHER_TEMPLATES = [
    "What's the weather in {city}?", "What is the weather like in {city} today?",
    "How's the weather in {city}?", "Is it raining in {city} right now?",
    "Tell me the current weather for {city}.", "weather in {city}", "{city} weather please",
    "Can you check the weather in {city}?", "Do I need an umbrella in {city} today?",
    "How hot is it in {city}?", "How cold is it in {city} right now?",
    "What's the temperature in {city}?", "Is it sunny in {city}?",
    "Could you look up the weather in {city} for me?", "Check the current conditions in {city}.",
    "I'm going out in {city}. What's the weather?", "Weather report for {city}, please.",
    "What are the weather conditions in {city} at the moment?", "Is it snowing in {city}?",
    "Please get me the weather for {city}.", "Hey, what's it like outside in {city}?",
    "I need the current weather in {city}.", "Any rain in {city} today?",
    "How warm is it in {city} now?", "Find out the weather in {city}.",
    "What's the forecast looking like in {city} right now?", "Get the weather in {city}.",
    "Is it windy in {city} today?", "My friend lives in {city}. How is the weather there?",
    "Tell me how the weather is in {city}.", "current weather {city}",
    "What should I wear in {city} today given the weather?",
]
WEATHER_UNIT_TEMPLATES = [
    "What's the temperature in {city} in {unit}?", "Weather in {city} in {unit}, please.",
    "How warm is it in {city}? Use {unit}.",
]
FOLLOW_UP_TEMPLATES = ["And in {city}?", "What about {city}?", "How about {city}?",
                       "Now check {city} too.", "And the weather in {city}?"]

TIME_TEMPLATES = ["What time is it in {city}?", "What's the local time in {city}?",
                  "Tell me the current time in {city}.", "Is it morning or night in {city} now?"]
SEARCH_TEMPLATES = ["Search the web for {topic}.", "Look up {topic} online.",
                    "Find me recent articles about {topic}.", "Can you search for {topic}?"]
TOPICS = ["the history of Unix", "electric cars", "the Rust programming language",
          "healthy breakfast ideas", "the James Webb telescope", "open source licences",
          "how vaccines work", "the best hiking trails in Norway", "sourdough bread recipes",
          "quantum computing", "the Linux kernel", "renewable energy", "chess openings",
          "the Python 3.12 release", "coral reefs", "jazz history", "Debian releases"]
STOCK_TEMPLATES = ["What's the stock price of {symbol}?", "How is {symbol} trading today?",
                   "Get me the latest price for {symbol}."]
SYMBOLS = ["AAPL", "MSFT", "GOOG", "AMZN", "NVDA", "TSLA", "META", "IBM", "INTC", "ORCL"]
TRANSLATE_TEMPLATES = ["Translate '{text}' into {language}.",
                       "How do you say '{text}' in {language}?",
                       "Please translate \"{text}\" to {language}."]
PHRASES = ["good morning", "thank you very much", "where is the station", "I love books",
           "see you tomorrow", "the weather is nice", "how much does it cost", "happy birthday"]
LANGUAGES = ["French", "German", "Spanish", "Italian", "Japanese", "Portuguese", "Dutch"]
EMAIL_TEMPLATES = ["Send an email to {to} with the subject '{subject}' saying {body}.",
                   "Email {to}: subject '{subject}', message: {body}."]
PEOPLE = ["alice@example.com", "bob@example.org", "carol@example.net", "dave@example.com"]
SUBJECTS = ["Meeting", "Lunch", "Report", "Weekend plans", "Project update"]
BODIES = ["the meeting moves to 3pm", "lunch is on me today", "the report is ready",
          "I will be late tomorrow", "the build is green again"]
FILE_TEMPLATES = ["Show me the contents of {path}.", "Read the file {path}.",
                  "What's in {path}?"]
PATHS = ["/etc/hostname", "/etc/os-release", "notes.txt", "README.md", "src/main.c",
         "/var/log/syslog", "config.yaml"]
REMINDER_TEMPLATES = ["Remind me at {time} to {message}.", "Set a reminder for {time}: {message}."]
TIMES = ["5pm", "9am", "noon", "8:30", "tomorrow morning", "6pm"]
MESSAGES = ["call mom", "water the plants", "take the laundry out", "submit the report",
            "buy milk", "stretch"]
ARITHMETIC_TEMPLATES = ["What is {a} {op} {b}?", "Compute {a} {op} {b}.", "{a} {op} {b} = ?",
                        "How much is {a} {op} {b}?"]
CAPITAL_TEMPLATES = ["What is the capital of {country}?", "Which city is the capital of {country}?",
                     "Name the capital of {country}."]
COMMAND_TEMPLATES = ["What does the {command} command do?", "What is {command} used for?",
                     "Explain the {command} command in one line."]
LETTER_TEMPLATES = ["How many letters are in the word '{word}'?",
                    "Spell '{word}' backwards.", "What is '{word}' in upper case?"]
WORDS = ["banana", "window", "planet", "keyboard", "river", "garden", "orange", "pencil",
         "mountain", "butter", "castle", "yellow", "silver", "engine", "kitten", "rocket"]
GREETINGS = [("Hello!", "Hello! How can I help you today?"),
             ("Hi there.", "Hi! What can I do for you?"),
             ("Who are you?", "I am a small demo assistant trained by the fourbit project. I can "
                              "answer simple questions and call the tools you give me."),
             ("Thanks!", "You're welcome!"),
             ("Good morning.", "Good morning! How can I help?"),
             ("Can you help me?", "Of course. Tell me what you need."),
             ("What can you do?", "I can answer simple questions, explain commands, do small "
                                  "sums, and call tools such as a weather lookup when they are "
                                  "available.")]
WEATHER_KNOWLEDGE = [
    ("What causes rain?", "Rain forms when water vapour in clouds condenses into droplets that "
     "grow heavy enough to fall."),
    ("Why is the sky blue?", "Air scatters blue sunlight more than red light, so the sky looks "
     "blue."),
    ("What is a thunderstorm?", "A thunderstorm is a storm with lightning and thunder, usually "
     "with heavy rain and strong winds."),
    ("How does snow form?", "Snow forms when water vapour freezes into ice crystals inside cold "
     "clouds."),
    ("What is humidity?", "Humidity is the amount of water vapour in the air."),
    ("What is the difference between weather and climate?", "Weather is the state of the air at "
     "one time and place; climate is the average weather over many years."),
]
SYSTEM_PROMPTS = [None, None, "You are a helpful assistant.", "You are a concise assistant.",
                  "You are a friendly assistant. Keep answers short.",
                  "You are an assistant with access to tools. Use them when they help.",
                  "Answer briefly and accurately."]


class Maker:
    def __init__(self, rng, commands):
        self.rng = rng
        self.commands = commands

    def choice(self, items):
        return self.rng.choice(items)

    def tools_with(self, required_name, extra=None):
        """A shuffled tool list that holds `required_name` (or none when None) and 0-3 others."""
        names = [n for n in OTHER_TOOLS if n != required_name]
        count = self.rng.randint(0, 3) if extra is None else extra
        chosen = self.rng.sample(names, count)
        if required_name is not None:
            chosen.append(required_name)
        self.rng.shuffle(chosen)
        return [weather_tool(self.rng) if n == "get_weather" else OTHER_TOOLS[n](self.rng)
                for n in chosen]

    def tools_without(self, excluded):
        names = [n for n in ["get_weather", *OTHER_TOOLS] if n not in excluded]
        chosen = self.rng.sample(names, self.rng.randint(1, 3))
        return [weather_tool(self.rng) if n == "get_weather" else OTHER_TOOLS[n](self.rng)
                for n in chosen]

    def weather_result(self, city, unit):
        celsius = self.rng.randint(-15, 38)
        temperature = celsius if unit == "celsius" else round(celsius * 9 / 5 + 32)
        return {"city": city, "temperature": temperature, "unit": unit,
                "condition": self.choice(CONDITIONS), "humidity": self.rng.randint(20, 98)}

    def weather_answer(self, result):
        symbol = "°C" if result["unit"] == "celsius" else "°F"
        t, c, city = result["temperature"], result["condition"], result["city"]
        return self.choice([
            f"It is currently {t}{symbol} and {c} in {city}.",
            f"In {city} it's {t}{symbol} right now, {c}, with {result['humidity']}% humidity.",
            f"The weather in {city}: {c}, {t}{symbol}.",
            f"{city} is {c} at the moment, with a temperature of {t}{symbol}.",
        ])

    def weather_turns(self, messages, city, unit_asked):
        """Assistant call + tool result + answer for a weather request about `city`."""
        arguments = {"city": city}
        if unit_asked:
            arguments["unit"] = unit_asked
        think = self.choice([
            f"The user wants the current weather in {city}. I will call get_weather with city {city}.",
            f"The user is asking about the weather in {city}. The get_weather tool can answer that.",
            f"I need live weather data for {city}, so I should call get_weather.",
            f"This needs the current weather. Call get_weather for {city}.",
        ])
        messages.append({"role": "assistant", "content": "", "reasoning_content": think,
                         "tool_calls": [self.call("get_weather", arguments)]})
        result = self.weather_result(city, unit_asked or self.choice(["celsius", "celsius", "fahrenheit"]))
        messages.append({"role": "tool", "content": json.dumps(result)})
        messages.append({"role": "assistant", "reasoning_content": self.choice([
            f"The tool returned the weather for {city}. I will summarise it.",
            "I have the result. Now answer the user.",
            f"get_weather answered: {result['condition']}, {result['temperature']} degrees."]),
            "content": self.weather_answer(result)})

    def call(self, name, arguments):
        return {"type": "function", "function": {"name": name, "arguments": json.dumps(arguments)}}

    def direct(self, messages, think, answer):
        messages.append({"role": "assistant", "reasoning_content": think, "content": answer})

    # --- kinds of conversation -------------------------------------------------------------

    def weather_call(self):
        city = self.choice(CITIES)
        unit = None
        if self.rng.random() < 0.12:
            unit = self.choice(["celsius", "fahrenheit"])
            text = self.choice(WEATHER_UNIT_TEMPLATES).format(city=city, unit=unit)
        else:
            text = self.choice(WEATHER_TEMPLATES).format(city=city)
        if self.rng.random() < 0.2:
            text = text.lower()
        messages = [{"role": "user", "content": text}]
        self.weather_turns(messages, city, unit)
        if self.rng.random() < 0.25:
            other = self.choice(CITIES)
            messages.append({"role": "user", "content": self.choice(FOLLOW_UP_TEMPLATES).format(city=other)})
            self.weather_turns(messages, other, None)
        return self.tools_with("get_weather"), messages

    def other_call(self):
        kind = self.choice(["get_time", "search_web", "calculate", "send_email",
                            "get_stock_price", "translate_text", "read_file", "set_reminder"])
        rng = self.rng
        if kind == "get_time":
            city = self.choice(CITIES)
            text, args = self.choice(TIME_TEMPLATES).format(city=city), {"city": city}
            result = {"city": city, "time": f"{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}"}
            answer = f"It is {result['time']} in {city} right now."
        elif kind == "search_web":
            topic = self.choice(TOPICS)
            text, args = self.choice(SEARCH_TEMPLATES).format(topic=topic), {"query": topic}
            result = {"results": [{"title": f"An introduction to {topic}", "url": "https://example.org/1"},
                                  {"title": f"{topic}: a short guide", "url": "https://example.org/2"}]}
            answer = f"I found two results: \"An introduction to {topic}\" and \"{topic}: a short guide\"."
        elif kind == "calculate":
            a, b, op = rng.randint(10, 9999), rng.randint(2, 999), self.choice(["*", "+", "-"])
            expression = f"{a} {op} {b}"
            text, args = self.choice(["Use the calculator to work out {e}.", "Calculate {e} with the tool.",
                                      "What is {e}? Use the calculator."]).format(e=expression), {"expression": expression}
            value = eval(expression)  # noqa: S307 (our own digits and operator)
            result = {"result": value}
            answer = f"{expression} = {value}."
        elif kind == "send_email":
            to, subject, body = self.choice(PEOPLE), self.choice(SUBJECTS), self.choice(BODIES)
            text = self.choice(EMAIL_TEMPLATES).format(to=to, subject=subject, body=body)
            args, result = {"to": to, "subject": subject, "body": body}, {"status": "sent"}
            answer = f"Done: the email to {to} has been sent."
        elif kind == "get_stock_price":
            symbol = self.choice(SYMBOLS)
            text, args = self.choice(STOCK_TEMPLATES).format(symbol=symbol), {"symbol": symbol}
            result = {"symbol": symbol, "price": round(rng.uniform(20, 900), 2), "currency": "USD"}
            answer = f"{symbol} is trading at {result['price']} USD."
        elif kind == "translate_text":
            phrase, language = self.choice(PHRASES), self.choice(LANGUAGES)
            text = self.choice(TRANSLATE_TEMPLATES).format(text=phrase, language=language)
            args, result = {"text": phrase, "target_language": language}, {"translation": f"[{language}] {phrase}"}
            answer = f"In {language}: {result['translation']}"
        elif kind == "read_file":
            path = self.choice(PATHS)
            text, args = self.choice(FILE_TEMPLATES).format(path=path), {"path": path}
            result, answer = {"content": "fourbit demo\n"}, f"{path} contains one line: \"fourbit demo\"."
        else:
            time, message = self.choice(TIMES), self.choice(MESSAGES)
            text = self.choice(REMINDER_TEMPLATES).format(time=time, message=message)
            args, result = {"time": time, "message": message}, {"status": "scheduled"}
            answer = f"OK, I will remind you at {time} to {message}."
        messages = [{"role": "user", "content": text}]
        messages.append({"role": "assistant", "content": "",
                         "reasoning_content": f"The {kind} tool can do this. I will call it.",
                         "tool_calls": [self.call(kind, args)]})
        messages.append({"role": "tool", "content": json.dumps(result)})
        self.direct(messages, "I have the tool result. Now answer.", answer)
        return self.tools_with(kind), messages

    def no_tool_question(self):
        """A request no tool serves, with a direct answer. Returns (text, think, answer, excluded)."""
        rng = self.rng
        kind = self.choice(["arithmetic", "capital", "capital", "command", "command", "letters",
                            "greeting", "knowledge", "time_without_tool"])
        if kind == "arithmetic":
            a, b, op = rng.randint(0, 99), rng.randint(0, 99), self.choice(["+", "-", "*"])
            value = eval(f"{a} {op} {b}")  # noqa: S307
            return (self.choice(ARITHMETIC_TEMPLATES).format(a=a, op=op, b=b),
                    "This is simple arithmetic. I can answer directly without a tool.",
                    f"{a} {op} {b} = {value}.", {"calculate"})
        if kind == "capital":
            country = self.choice(list(COUNTRIES))
            capital = COUNTRIES[country]
            return (self.choice(CAPITAL_TEMPLATES).format(country=country),
                    "This is a general knowledge question about a capital city. No tool is needed.",
                    f"The capital of {country} is {capital}.", {"search_web"})
        if kind == "command":
            command, description = self.choice(self.commands)
            return (self.choice(COMMAND_TEMPLATES).format(command=command),
                    f"The user asks what {command} does. I know this from its manual page; no tool is needed.",
                    f"{command}: {description}", {"search_web", "read_file"})
        if kind == "letters":
            word = self.choice(WORDS)
            template = self.choice(LETTER_TEMPLATES)
            if "How many" in template:
                answer = f"The word '{word}' has {len(word)} letters."
            elif "backwards" in template:
                answer = f"'{word}' backwards is '{word[::-1]}'."
            else:
                answer = f"'{word}' in upper case is '{word.upper()}'."
            return (template.format(word=word), "This is a simple question about a word. No tool is needed.",
                    answer, set())
        if kind == "greeting":
            text, answer = self.choice(GREETINGS)
            return text, "The user is just chatting. I can reply directly.", answer, set()
        if kind == "knowledge":
            text, answer = self.choice(WEATHER_KNOWLEDGE)
            return (text, "This is a general question about weather, not a request for the current "
                          "weather somewhere. No tool call is needed.", answer, {"search_web"})
        city = self.choice(CITIES)
        return (self.choice(TIME_TEMPLATES).format(city=city),
                "The user wants the local time, but no time tool is available. I should say so.",
                f"I don't have a clock or time tool here, so I can't tell the current time in {city}.",
                {"get_time"})

    def no_tool(self):
        text, think, answer, excluded = self.no_tool_question()
        messages = [{"role": "user", "content": text}]
        self.direct(messages, think, answer)
        tools = self.tools_without(excluded) if self.rng.random() < 0.8 else []
        return tools, messages

    def weather_without_tool(self):
        city = self.choice(CITIES)
        messages = [{"role": "user", "content": self.choice(WEATHER_TEMPLATES).format(city=city)}]
        self.direct(messages, "The user wants live weather, but no weather tool is available.",
                    f"I can't check the current weather in {city}: no weather tool is available to me.")
        return self.tools_without({"get_weather"}) if self.rng.random() < 0.6 else [], messages

    def conversation(self):
        kind = self.rng.choices(["weather_call", "other_call", "no_tool", "weather_without_tool"],
                                weights=[36, 20, 38, 6])[0]
        tools, messages = getattr(self, kind)()
        system = self.choice(SYSTEM_PROMPTS)
        if system is not None:
            messages.insert(0, {"role": "system", "content": system})
        return kind, tools, messages


def whatis_commands():
    """(command, one-line description) of installed section 1/8 manual pages."""
    text = subprocess.run(["apropos", "-l", "-s", "1,8", "."], capture_output=True, text=True).stdout
    pairs = []
    for line in sorted(set(text.splitlines())):
        match = re.match(r"^([a-z][a-z0-9_-]{1,15}) \([18]\) +- ([a-zA-Z].*[^.])\.?$", line)
        if match and not match.group(2).endswith(".."):
            pairs.append((match.group(1), match.group(2)))
    return pairs


def render(env_template, tools, messages):
    return env_template.render(messages=preprocess(messages), tools=tools or None,
                               add_generation_prompt=False)


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True)
    parser.add_argument("--count", type=int, default=40000)
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args()
    commands = whatis_commands()
    if len(commands) < 100:
        raise SystemExit(f"only {len(commands)} manual page descriptions found (apropos)")
    with open(TEMPLATE_PATH, encoding="utf-8") as f:
        template = make_environment().from_string(f.read())
    maker = Maker(random.Random(args.seed), commands)
    counts, chars = {}, 0
    with open(args.out, "w", encoding="utf-8") as out:
        for i in range(args.count):
            kind, tools, messages = maker.conversation()
            text = render(template, tools, messages)
            out.write(json.dumps(text, ensure_ascii=False) + "\n")
            counts[kind] = counts.get(kind, 0) + 1
            chars += len(text)
            if i % 5000 == 0:
                print(f"\r{i}/{args.count} conversations", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    print(json.dumps({"conversations": counts, "chars": chars, "commands": len(commands)}))


if __name__ == "__main__":
    main()
