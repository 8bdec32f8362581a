// Words for the safety code.
//
// Each word is spelled the same in German and in English and is a common
// noun in both, so a therapist reading in German and a client listening in
// English (or the reverse) recognise it. No two words share their first
// three letters, which keeps them apart on a bad audio line. There are
// exactly 64 words: each one carries 6 bits of the code.

/** @type {readonly string[]} */
// prettier-ignore
export const SAFETY_WORDS = Object.freeze([
  "Alarm", "Album", "Atlas", "Baby", "Ball", "Banjo", "Burger", "Butter",
  "Cello", "Cowboy", "Delta", "Disco", "Donut", "Echo", "Film", "Finger",
  "Golf", "Gong", "Gorilla", "Hammer", "Hand", "Hobby", "Hotel", "Jaguar",
  "Jazz", "Joker", "Ketchup", "Kiwi", "Koala", "Laser", "Lava", "Magnet",
  "Mango", "Motor", "Muffin", "Nest", "Omega", "Panda", "Park", "Piano",
  "Pilot", "Pizza", "Puma", "Radio", "Rodeo", "Safari", "Salami", "Sand",
  "Sauna", "Sofa", "Studio", "Taxi", "Tennis", "Ticket", "Tiger", "Toast",
  "Tornado", "Tunnel", "Video", "Villa", "Winter", "Yoga", "Zebra", "Zoo",
]);

/** Bits of the safety code carried by one word. */
export const BITS_PER_WORD = 6;
