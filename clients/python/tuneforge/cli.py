def main() -> None:
    print("tuneforge")
